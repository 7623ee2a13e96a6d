"""What people read afterwards: the execution log, graphs, gantt, the status document."""
