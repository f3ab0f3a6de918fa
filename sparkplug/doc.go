// Package sparkplug makes inspectd a Sparkplug B edge node (Eclipse
// Sparkplug 3.0) beside its own JSON topics: the daemon is the edge node, its
// camera the device.
//
// # Topics
//
//	spBv1.0/<group>/NBIRTH/<edge node>           on every connection and rebirth; seq 0
//	spBv1.0/<group>/NDEATH/<edge node>           the connection's last will, and sent on a clean stop
//	spBv1.0/<group>/NCMD/<edge node>             subscribed: Node Control/Rebirth
//	spBv1.0/<group>/DBIRTH/<edge node>/<camera>  after NBIRTH, and on Device Control/Rebirth
//	spBv1.0/<group>/DDATA/<edge node>/<camera>   one per inspection, and when state, model or settings change
//	spBv1.0/<group>/DDEATH/<edge node>/<camera>  on a clean stop
//	spBv1.0/<group>/DCMD/<edge node>/<camera>    subscribed: Config/Threshold, Config/Inspection Enabled, Device Control/Rebirth
//	spBv1.0/STATE/<primary host>                 subscribed when a primary host is configured
//
// Births, data and device deaths go at QoS 0, not retained, as the
// specification asks; NDEATH at QoS 1. Every message but NDEATH carries seq,
// 0 in NBIRTH and one more in each message after it, wrapping after 255. The
// NDEATH will and the NBIRTH of one connection carry the same bdSeq, which
// goes up by one per connection (0..255), also across restarts when
// Config.BdSeqFile is set (the daemon keeps it in its spool directory). Births name every metric with its alias and data type; data
// messages carry aliases only. Metrics without a value yet (no inspection)
// are sent as null in the birth.
//
// # Commands
//
// NCMD and DCMD payloads come from the network: they are bounded
// (MaxCommandBytes, MaxCommandMetrics), decoded, and each metric is matched
// by name or alias and checked for type and range (ParseCommand); anything
// else is refused, logged and counted (Stats), and retained commands are
// ignored. An accepted change is confirmed by a DDATA with the new value.
//
// # Primary host
//
// With a primary host id the births wait for its STATE message saying
// online (Sparkplug 3.0's JSON {"online":true,"timestamp":...} on
// spBv1.0/STATE/<id>, or 2.2's ONLINE on STATE/<id>); when it goes offline
// the node sends NDEATH, reconnects, and waits again.
package sparkplug
