package gatehouse.authz

import rego.v1

# Gatehouse asks POST /v1/data/gatehouse/authz {"input": {...}} and reads {"result": {"allow", "reason"}}.
default allow := false

denials contains reason if some reason in data.gatehouse.tenant_isolation.deny

denials contains reason if some reason in data.gatehouse.methods.deny

denials contains reason if some reason in data.gatehouse.network.deny

allow if count(denials) == 0

reason := concat("; ", sort(denials)) if count(denials) > 0
