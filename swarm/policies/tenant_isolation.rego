package gatehouse.tenant_isolation

import rego.v1

# Runner paths that name a tenant must name the caller's tenant:
# /admin/runner/tenants/<tenant>/... is refused unless x-tenant-id was that tenant.
deny contains msg if {
	input.path[0] == "admin"
	input.path[1] == "runner"
	input.path[2] == "tenants"
	named := input.path[3]
	named != input.tenant
	msg := sprintf("path names tenant %s, request is for %v", [named, input.tenant])
}
