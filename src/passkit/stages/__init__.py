"""Pipeline stages: pure batch functions ``stage(batch, cfg) -> StageResult``."""
