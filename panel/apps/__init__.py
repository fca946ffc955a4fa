"""Applications the Aegir way: platforms (shared codebases) and the sites installed on them."""
