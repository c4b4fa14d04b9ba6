# Ouroboros audit policy: each rule adds a reason to `deny`; any reason rejects the patch.
# Input (built by ouroboros.kernel.audit): type, target, author, reasoning, texts,
# new_urls [{url, host}], granted [names], value_bytes, reasoning_bytes,
# signer {root, rights}. Data: data.config = the `audit` section of kernel/gates.
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
	msg := sprintf("privilege escalation: grants tool %s but no signer holds the 'grant' right", [tool])
}

# A trust change is never made by a non-root signer, whatever its delegations say.
deny contains msg if {
	input.type == "trust"
	not input.signer.root
	msg := "privilege escalation: only the root threshold may change the trust policy"
}

# Prompt-injection markers in prompt text or in the reasoning.
deny contains msg if {
	some text in input.texts
	some marker in data.config.injection_markers
	contains(lower(text), lower(marker))
	msg := sprintf("prompt-injection marker \"%s\" found", [marker])
}

# No new external URL unless its host (or a parent domain) is allow-listed.
deny contains msg if {
	some u in input.new_urls
	not url_allowed(u.host)
	msg := sprintf("new external URL %s is not in the allow-list", [u.url])
}

url_allowed(host) if {
	some allowed in data.config.url_allowlist
	host == allowed
}

url_allowed(host) if {
	some allowed in data.config.url_allowlist
	endswith(host, sprintf(".%s", [allowed]))
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
