# Ouroboros audit policy: each rule adds a reason to `deny`; any reason rejects the patch.
# Input (built by ouroboros.kernel.audit from ouroboros.kernel.scan): type, target,
# injections [{marker, where}] (markers found on the folded text of every string of the
# value, keys included, and of the reasoning), new_urls [{url, scheme, host, kind, error}]
# (hosts resolved as a browser would; kind domain|ipv4|ipv6|none|invalid), granted
# [names] (new grants anywhere in the value), value_bytes, reasoning_bytes,
# signer {root, rights}. Data: data.config = the `audit` section of kernel/gates,
# data.hosts = its url_allowlist as the URL parser resolves hosts.
package ouroboros.audit

import rego.v1

# Forbidden targets: the trust policy, the gate configuration and the ledger belong to root.
deny contains msg if {
	not input.signer.root
	some pattern in data.config.forbidden_targets
	glob.match(pattern, [], input.target)
	msg := sprintf("forbidden target: %s may only be changed by root (matches %s)", [input.target, pattern])
}

# No privilege escalation: granting tools needs a signer holding the 'grant' right.
deny contains msg if {
	some tool in input.granted
	not input.signer.root
	not "grant" in input.signer.rights
	msg := sprintf("privilege escalation: grants %s but no signer holds the 'grant' right", [tool])
}

# A trust change is never made by a non-root signer, whatever its delegations say.
deny contains msg if {
	input.type == "trust"
	not input.signer.root
	msg := "privilege escalation: only the root threshold may change the trust policy"
}

# Prompt-injection markers anywhere in the value or the reasoning.
deny contains msg if {
	some hit in input.injections
	msg := sprintf("prompt-injection marker \"%s\" found at %s", [hit.marker, hit.where])
}

# A URL that does not parse is never waved through.
deny contains msg if {
	some u in input.new_urls
	u.error != ""
	msg := sprintf("malformed URL %s: %s", [u.url, u.error])
}

# Every scheme is judged by its host: data:, javascript:, file:/// have none to allow.
deny contains msg if {
	some u in input.new_urls
	u.error == ""
	u.host == ""
	msg := sprintf("new external URL %s has no host to allow-list (scheme %s)", [u.url, u.scheme])
}

# No new external URL unless its host (or a parent domain) is allow-listed.
deny contains msg if {
	some u in input.new_urls
	u.error == ""
	u.host != ""
	not url_allowed(u)
	msg := sprintf("new external URL %s is not in the allow-list (host %s)", [u.url, u.host])
}

allowed_hosts contains h if {
	some h in data.hosts
}

allowed_hosts contains lower(h) if {
	not data.hosts
	some h in data.config.url_allowlist
}

url_allowed(u) if {
	some allowed in allowed_hosts
	u.host == allowed
}

# Parent domains only for domain names: 4.3.2.1 is not "under" 2.1.
url_allowed(u) if {
	u.kind == "domain"
	some allowed in allowed_hosts
	endswith(u.host, concat("", [".", allowed]))
}

# Size bounds.
deny contains msg if {
	input.value_bytes > data.config.max_value_bytes
	msg := sprintf("value is %d bytes, over the %d-byte bound", [input.value_bytes, data.config.max_value_bytes])
}

deny contains msg if {
	input.reasoning_bytes > data.config.max_reasoning_bytes
	msg := sprintf("reasoning is %d bytes, over the %d-byte bound", [input.reasoning_bytes, data.config.max_reasoning_bytes])
}
