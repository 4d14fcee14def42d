/// Defines an integer identifier newtype.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(i64);

        impl $name {
            /// Wraps a raw identifier. Any integer is a well-formed id; whether it exists is for
            /// a repository to say.
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }

            /// The raw identifier.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(raw: i64) -> Self {
                Self(raw)
            }
        }
    };
}

id_type!(
    /// Identifies a [`crate::Source`].
    SourceId
);
id_type!(
    /// Identifies a [`crate::Destination`].
    DestinationId
);
id_type!(
    /// Identifies a [`crate::Pipeline`] (and its one [`crate::PipelineMetadata`] row).
    PipelineId
);
id_type!(
    /// Identifies an [`crate::Alert`].
    AlertId
);
id_type!(
    /// Identifies a [`crate::NotificationChannel`].
    ChannelId
);
id_type!(
    /// Identifies a [`crate::Delivery`]; also the `webhook-id` of every attempt to send it.
    DeliveryId
);
id_type!(
    /// Identifies a [`crate::CleanupTask`].
    CleanupTaskId
);
