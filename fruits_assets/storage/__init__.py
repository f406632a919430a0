"""Where and how outputs are stored: the filesystem (local or S3), the part format, Delta tables
and their commits, upkeep (garbage, repair), codecs per kind of value, and the catalog that reads
what is committed. No Dagster here."""
