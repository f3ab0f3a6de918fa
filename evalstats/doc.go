// Package evalstats scores an anomaly detector and turns good-part scores into a
// decision threshold.
//
// Conventions used throughout: a higher score means "more anomalous", a label
// of true means defective (the positive class, as in the DifferNet paper where
// every defect class is 1 and good is 0), and a part is rejected when its score
// is strictly greater than the threshold.
package evalstats
