"""State: the embedded Redis server, cursors and locks in Redis, the SQL ledger."""
