"""Training, evaluation and prediction: the run folder, the loop, schedules."""
