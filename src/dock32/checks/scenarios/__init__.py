"""What `doit verify` checks: one record per scenario (its name, what it needs, its check), the sandbox the checks
run in, and the selection of the scenarios that apply to a flavour on a machine. catalogue.py holds their order."""
