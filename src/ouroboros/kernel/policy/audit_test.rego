# Rego unit tests for audit.rego; the Python suite runs every `test_` rule.
# (regopy's rego-cpp mis-evaluates `with input as {nested object}`, so each test
# replaces input fields one by one.)
package ouroboros.audit

import rego.v1

test_forbidden_target_denied_for_non_root if {
	count(deny) > 0 with input.target as "kernel/gates"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.texts as []
		with input.new_urls as []
}

test_forbidden_target_allowed_for_root if {
	count(deny) == 0 with input.target as "kernel/gates"
		with input.signer as {"root": true, "rights": []}
		with input.granted as []
		with input.texts as []
		with input.new_urls as []
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_ordinary_target_allowed if {
	count(deny) == 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.texts as ["Be concise."]
		with input.new_urls as []
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_grant_without_right_denied if {
	count(deny) > 0 with input.target as "agents/alpha/tools"
		with input.signer as {"root": false, "rights": []}
		with input.granted as ["shell"]
		with input.texts as []
		with input.new_urls as []
}

test_grant_with_right_allowed if {
	count(deny) == 0 with input.target as "agents/alpha/tools"
		with input.signer as {"root": false, "rights": ["grant"]}
		with input.granted as ["shell"]
		with input.texts as []
		with input.new_urls as []
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_trust_change_by_non_root_denied if {
	count(deny) > 0 with input.type as "trust"
		with input.target as "agents/x"
		with input.signer as {"root": false, "rights": ["grant"]}
		with input.granted as []
		with input.texts as []
		with input.new_urls as []
}

test_injection_marker_denied if {
	count(deny) > 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.injections as [{"marker": "ignore previous instructions", "where": "/"}]
		with input.new_urls as []
}

test_unlisted_url_denied if {
	count(deny) > 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.texts as []
		with input.new_urls as [{"url": "https://evil.test/x", "scheme": "https", "host": "evil.test", "kind": "domain", "error": ""}]
}

test_allowlisted_subdomain_allowed if {
	count(deny) == 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.texts as []
		with input.new_urls as [{"url": "https://api.example.com/v1", "scheme": "https", "host": "api.example.com", "kind": "domain", "error": ""}]
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_oversized_value_denied if {
	count(deny) > 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.texts as []
		with input.new_urls as []
		with input.value_bytes as 100000000
		with input.reasoning_bytes as 10
}

test_malformed_url_denied if {
	count(deny) > 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.injections as []
		with input.new_urls as [{"url": "https://[", "scheme": "https", "host": "", "kind": "invalid", "error": "not a valid URL"}]
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_hostless_url_denied if {
	count(deny) > 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.injections as []
		with input.new_urls as [{"url": "javascript:alert(1)", "scheme": "javascript", "host": "", "kind": "none", "error": ""}]
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_ip_is_not_a_subdomain if {
	count(deny) > 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.injections as []
		with input.new_urls as [{"url": "http://1.example.com/", "scheme": "http", "host": "1.example.com", "kind": "ipv4", "error": ""}]
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_lookalike_parent_domain_denied if {
	count(deny) > 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.injections as []
		with input.new_urls as [{"url": "https://example.com.evil.test/", "scheme": "https", "host": "example.com.evil.test", "kind": "domain", "error": ""}]
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}

test_allowlisted_host_allowed if {
	count(deny) == 0 with input.target as "agents/alpha/prompt"
		with input.signer as {"root": false, "rights": []}
		with input.granted as []
		with input.injections as []
		with input.new_urls as [{"url": "https://docs.python.org/3/", "scheme": "https", "host": "docs.python.org", "kind": "domain", "error": ""}]
		with input.value_bytes as 10
		with input.reasoning_bytes as 10
}
