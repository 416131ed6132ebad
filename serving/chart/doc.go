// Package chart draws learning curves for people: the rolling and
// cumulative metric of a model over rows or time, the served model beside
// the live one, a no-change baseline for classifiers, and drift detections
// and promotions as vertical marks. `eddy evaluate --plot` writes one to a
// file; the service's live page (/ui on the metrics listener) renders the
// same pictures as inline SVG.
//
// It owns nothing but the drawing: callers collect the points (a Curve per
// run or per model) and choose the format (svg or png). Drawing goes
// through gonum's plotting library (gonum.org/v1/plot); the package uses no
// other eddy package.
//
// Concurrency: a Chart is a value; Render reads it and writes the picture,
// and may run on many goroutines at once, each with its own Chart.
package chart
