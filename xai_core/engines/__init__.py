"""Where work runs: in-process (the default), the confined model worker, Ray.

The service does not care which engine runs the work; each engine module here
takes the same requests and returns the same :class:`~xai_core.types.Explanation`.
"""
