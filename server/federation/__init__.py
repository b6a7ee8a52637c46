"""The federation itself: the run's lifecycle and book, the plain and secure (SecAgg+)
strategies, rounds with bounded waits, update validation, checkpoints, the run folder
and the ministry's audit log."""
