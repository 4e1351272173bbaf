"""The pure core: what a user is, who is in scope, what is written, what action follows.

Nothing here performs I/O; an import-linter contract keeps it that way.
"""
