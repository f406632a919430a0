"""Where and how outputs are stored: the filesystem (local or S3), the part format, versions and
their publish protocol, residue of dead runs, codecs per stored kind, and the catalog that reads
what is published. No Dagster here."""
