package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eddyhq/eddy/stream"
)

// Both produce and evaluate read CSV files with stream.CSVReader, so that a
// row means the same event to both; this words its errors for the command
// line.

// csvFlags names the flag that sets each stream.CSVConfig field.
var csvFlags = map[string]string{"Target": "--target", "Key": "--key", "Ignore": "--ignore", "Categorical": "--categorical"}

// csvHeaderError words an error of stream.NewCSVReader for command cmd
// reading file, naming columns by the flags that named them.
func csvHeaderError(cmd, file string, err error) error {
	var (
		header *stream.CSVHeaderError
		column *stream.CSVColumnError
	)
	switch {
	case errors.Is(err, stream.ErrCSVEmpty):
		return fmt.Errorf("%s: %s is empty; want a header row naming the columns", cmd, file)
	case errors.As(err, &header):
		return fmt.Errorf("%s: %s: %s", cmd, file, header.Reason)
	case errors.As(err, &column):
		return fmt.Errorf("%s: %s: no column %q for %s (columns: %s)", cmd, file, column.Column, csvFlags[column.Role], strings.Join(column.Header, ", "))
	}
	return fmt.Errorf("%s: %s: %w", cmd, file, err)
}
