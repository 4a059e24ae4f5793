"""What routes call: functions that check requests against the database and the data root, write rows
and files, and enqueue work only after the commit. Routes stay thin; these stay free of HTTP details
other than the errors in `app.errors`."""
