"""Pool readers: YFCC100M metadata, url tables (csv/tsv/parquet/jsonl), image folders -> POOL_SCHEMA tables."""
