//! graphite-web's Filter Series, Filter Data and Sorting functions.

use carbide_query::grammar::Call;

use super::Args;
use crate::RenderError;
use crate::catalog::FunctionInfo;
use crate::eval::Context;
use crate::series::TimeSeries;

/// The functions of this group, as `/functions` lists them.
pub const FUNCTIONS: &[FunctionInfo] = &[];

/// Runs one function of [`FUNCTIONS`].
pub(crate) fn dispatch(_ctx: &Context<'_>, _call: &Call, a: &Args) -> Result<Vec<TimeSeries>, RenderError> {
    #[allow(clippy::match_single_binding)] // arms are added as the group grows
    match a.info.name {
        other => Err(RenderError::UnknownFunction(other.to_string())),
    }
}
