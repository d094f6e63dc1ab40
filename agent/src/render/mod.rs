//! What the `annexa` commands print, each file named for the output it
//! renders: [`scan`] (the text table and JUnit of `annexa scan`), [`gate`]
//! (both modes of `annexa gate`, in every CI format), [`status`] (the
//! collector's conformity tables), [`verify_log`] and [`verify_report`]
//! (what `annexa verify` checked). The commands (`crate::commands`) judge;
//! these only format what they judged.

pub mod gate;
pub mod scan;
pub mod status;
pub mod verify_log;
pub mod verify_report;
