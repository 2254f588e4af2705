//! The operator's controllers and the run-time pieces they share with `trustwatch audit`.

pub mod roots;
