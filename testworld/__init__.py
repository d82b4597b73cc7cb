"""Test worlds for hpcops.coe: simulated services the collection runs against."""
