"""Development tooling: the `make run` / `make test` supervisor (devstack). Not imported by the application."""
