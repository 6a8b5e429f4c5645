"""A live analysis session, free of transport: the pipeline, statistics per scope, findings, snapshots.

``analysis`` (``AnalysisSession``) -> ``findings`` (series kept for the verdicts, their schedule) ->
``snapshot`` (what the dashboards show, as plain dataclasses and their JSON); ``exercises`` is the
guided protocol and the timeline of exercise segments; ``jsonsafe`` rounds numbers for JSON.
The live server (``stream.server``) schedules these calls, stores the results and publishes them.
"""
