"""Evidence export: footage of one camera over a time range, packaged so that it can be verified."""
