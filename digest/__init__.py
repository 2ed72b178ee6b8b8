"""digest: a monthly link-digest publishing pipeline."""
