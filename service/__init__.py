"""What the API (`app/`) and the workers (`worker/`) share: settings, the database of record, the queue.

Neither imports the other: the API writes rows and enqueues task names; workers read rows, run `core`
and write results back. Keeping the shared part here lets both depend on it without `worker` importing
FastAPI or `app` importing torch.
"""
