package main

import "os"

var osErrDeadline = os.ErrDeadlineExceeded
