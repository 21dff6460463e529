"""Running on Ray clusters: the Ray session a run uses (``session``), submitting pipelines as
Ray jobs and the version guard (``jobs``), and submitting on a cron schedule (``schedule``)."""
