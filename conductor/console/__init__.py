"""What people see while it runs: plain lines, JSON lines, the rich live view."""
