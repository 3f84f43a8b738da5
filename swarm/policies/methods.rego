package gatehouse.methods

import rego.v1

read_methods := {"GET", "HEAD"}

# Outside the maintenance window (Sunday 02:00-04:00 UTC) runner administration is read-only.
maintenance if {
	[hour, _, _] := time.clock(time.now_ns())
	time.weekday(time.now_ns()) == "Sunday"
	hour >= 2
	hour < 4
}

deny contains msg if {
	input.right == "runner.admin"
	not input.method in read_methods
	not maintenance
	msg := sprintf("%s on the runner only in the maintenance window", [input.method])
}
