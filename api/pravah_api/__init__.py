"""Pravah's REST API: create and follow PravahJobs over HTTP, with the same RBAC as kubectl."""

__version__ = "0.1.0"
