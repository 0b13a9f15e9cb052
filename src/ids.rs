//! Identifier newtypes. Ids are never bare strings in the agent's code, so a framework id
//! cannot be passed where a task id is expected.

use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps a string as this id.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// The id the master assigned to an agent on its first registration.
    AgentId
);
string_id!(
    /// A framework's id, assigned by the master.
    FrameworkId
);
string_id!(
    /// An executor's id, unique within its framework.
    ExecutorId
);
string_id!(
    /// One run of an executor (the Mesos container id); a new one per launch.
    ContainerId
);
string_id!(
    /// A task's id, unique within its framework.
    TaskId
);

/// The 16-byte identity of one status update; acknowledgements name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Reads a uuid from protobuf bytes; `None` unless exactly 16 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Uuid> {
        <[u8; 16]>::try_from(bytes).ok().map(Uuid)
    }
    /// The bytes to put in a protobuf field.
    pub fn to_vec(self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if matches!(index, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}
