//! The validation context every part of a config's check shares: where the file is (for
//! errors with file:line:col) and the small parsers that name the place of what they refuse.

use std::{
    ops::Range,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use crate::{
    config::{ConfigError, Location, file::Sp},
    units::HumanDuration,
};

/// Validation context: the file's name and text (for locations) and its directory (relative
/// paths in the file are relative to it).
pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
    pub(super) source: &'a str,
    pub(super) base: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: Some(self.location(span)),
            message: message.into(),
        }
    }

    /// Where `span` is, kept in a spec for errors found when it is assembled.
    pub(super) fn location(&self, span: Range<usize>) -> Location {
        Location::of(self.file, self.source, span.start)
    }

    pub(super) fn parse<T: FromStr>(&self, value: &Sp<String>) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        value
            .get_ref()
            .parse::<T>()
            .map_err(|e| self.error(value.span(), e.to_string()))
    }

    pub(super) fn duration(
        &self,
        value: &Option<Sp<String>>,
    ) -> Result<Option<Duration>, ConfigError> {
        value
            .as_ref()
            .map(|v| self.parse::<HumanDuration>(v).map(|d| d.0))
            .transpose()
    }

    pub(super) fn path(&self, value: &Sp<String>) -> PathBuf {
        self.base.join(value.get_ref())
    }

    pub(super) fn existing_path(
        &self,
        value: &Sp<String>,
        what: &str,
    ) -> Result<PathBuf, ConfigError> {
        let path = self.path(value);
        if path.exists() {
            Ok(path)
        } else {
            Err(self.error(
                value.span(),
                format!("{what} {} does not exist", path.display()),
            ))
        }
    }
}
