//! Intel CAT/MBA through the Linux resctrl filesystem (issue "cat-rdt"):
//! discovery, validation, groups, schemata, assignment and monitoring. Not
//! filled yet.
