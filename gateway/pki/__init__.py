"""Development PKI: keys, CSRs, a file-based CA and chain checks, with no clock of its own."""
