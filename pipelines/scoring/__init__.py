"""Scoring on Ray: the fan-out the ``score`` stage and the hindcast's online scores share."""
