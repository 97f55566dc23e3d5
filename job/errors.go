package job

import (
	"errors"
	"fmt"
)

// PermanentError marks a failure that no retry can change: the input is
// not what the job needs (teravalidate finding a misorder or a checksum
// other than the one wanted), or a parameter turned out invalid only at
// run time. A runner that sees one (errors.As) in a task's error ends the
// job at once with the error's message instead of trying the task again.
type PermanentError struct {
	Err error
}

// Error returns Err's message, unchanged.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as not retryable (see PermanentError). It returns
// nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is a
// *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// UserError is what the task driver (RunMapTask, RunReduceTask, and
// through them RunSequential) returns for a failure of the job's own code:
// an error returned by a constructor (NewMapper, NewReducer, NewCombiner),
// Map, Reduce or Close, a constructor returning no value, or a panic in any
// of them. Failures outside user code — reading the input, writing the
// output, a full disk under the sort — are returned as they are, not as
// UserErrors, even when they reach the driver through the error user code
// returns from Emit. Its message is Err's.
type UserError struct {
	Err error
}

// Error returns Err's message, unchanged.
func (e *UserError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *UserError) Unwrap() error { return e.Err }

// IsUserError reports whether err, or an error it wraps, is a *UserError.
func IsUserError(err error) bool {
	var u *UserError
	return errors.As(err, &u)
}

// userErrorf wraps a user code failure with context, keeping it (and any
// PermanentError inside it) visible to errors.As.
func userErrorf(format string, err error) error {
	return &UserError{Err: fmt.Errorf(format, err)}
}
