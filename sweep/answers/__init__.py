"""What a study concludes: confirmation over seeds, the report and its pictures, the
study's description in MLflow."""
