"""Dates to the second in English pages (the admin's job timelines): "Nov. 29, 2026, 5:40 a.m." hides
whether a retry ran a second or a minute later."""

DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
