"""The project's own adversarial tests: each reproduces an attack and shows it fails."""
