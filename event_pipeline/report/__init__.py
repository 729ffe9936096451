"""Reports computed from the imported tables (pandas): what an organiser checks a schedule for."""
