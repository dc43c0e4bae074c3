"""AWS tasks (Prefect 1's ``prefect.tasks.aws``): ``headwater.tasks.aws.s3`` comes with ``headwater-s3``."""

__all__ = ["s3"]
