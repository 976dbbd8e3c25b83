//! Typed identifiers. All ids are UUIDs; new ones are v7 (time-ordered, index friendly).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// A user: the owner of prompts and executions.
    UserId
);
id_type!(
    /// A prompt (the named container of versions).
    PromptId
);
id_type!(
    /// One execution of a prompt version.
    ExecutionId
);
id_type!(
    /// A session or API-key credential.
    CredentialId
);
id_type!(
    /// A dataset: a named list of input rows.
    DatasetId
);
id_type!(
    /// An experiment: versions of a prompt run over a dataset.
    ExperimentId
);
