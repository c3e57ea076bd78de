"""Use cases. Each public function is one use case in one transaction."""
