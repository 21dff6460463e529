"""The ensemble store and what fills it: the store layout and unit writer (``store``), one unit's
rollout (``rollout``), online summaries merged across units (``summaries``) and the campaign
window that releases init dates a few at a time (``campaign``)."""
