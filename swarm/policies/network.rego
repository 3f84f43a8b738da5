package gatehouse.network

import rego.v1

blocked_cidrs := ["198.51.100.0/24"]

blocked_subjects := {"CN=retired-client,O=Example"}

deny contains msg if {
	some cidr in blocked_cidrs
	net.cidr_contains(cidr, input.client_ip)
	msg := sprintf("client address %s is blocked", [input.client_ip])
}

deny contains msg if {
	input.client_cert_subject in blocked_subjects
	msg := sprintf("client certificate %s is blocked", [input.client_cert_subject])
}
