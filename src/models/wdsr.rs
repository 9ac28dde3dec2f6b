//! WDSR-A and WDSR-B (Yu et al. 2018): wide activation before the ReLU, no conv
//! after the body, and a 5x5 skip branch from the input straight to the output.

use super::layers::{Kernel, Net};
use super::{Arch, ConvKind, ModelConfig};
use crate::ir::Outlet;
use anyhow::Result;

pub fn wdsr(net: &mut Net, x: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let (f, s, ch) = (c.filters, c.scale, c.channels);
    let skip = net.conv("skip.0", x, ch, ch * s * s, 5)?;
    let skip = net.pixel_shuffle("skip.1", skip, s)?;
    let mut h = net.conv("head.0", x, ch, f, 3)?;
    for i in 0..c.blocks {
        let name = format!("body.{i}");
        h = match c.arch {
            Arch::WdsrA => block_a(net, &name, h, c)?,
            _ => block_b(net, &name, h, c)?,
        };
    }
    let tail = net.conv("tail.0", h, f, ch * s * s, 3)?;
    let tail = net.pixel_shuffle("tail.1", tail, s)?;
    net.add("out", tail, skip)
}

/// WDSR-A: conv3x3 F -> F*e, ReLU, conv3x3 F*e -> F, x res_scale, + identity.
fn block_a(net: &mut Net, name: &str, x: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let (f, wide) = (c.filters, c.wide());
    let y = net.block_conv(&format!("{name}.body.0"), x, f, wide, 3)?;
    let y = net.relu(&format!("{name}.body.1"), y)?;
    let y = net.block_conv(&format!("{name}.body.2"), y, wide, f, 3)?;
    let y = net.scale(&format!("{name}.res_scale"), y, c.res_scale)?;
    net.add(name, y, x)
}

/// WDSR-B: expand 1x1, ReLU, then back to the block's width by `c.conv` (WDSR-B's
/// low-rank 1x1 and 3x3 unless another kind is asked for), x res_scale, + identity.
fn block_b(net: &mut Net, name: &str, x: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let (f, wide) = (c.filters, c.wide());
    let y = net.block_conv(&format!("{name}.body.0"), x, f, wide, 1)?;
    let y = net.relu(&format!("{name}.body.1"), y)?;
    let y = match c.conv {
        ConvKind::LowRank => low_rank(net, name, y, c)?,
        ConvKind::Flattened => flattened(net, name, y, c)?,
        ConvKind::Group(g) => group(net, name, y, c, g)?,
        ConvKind::Depthwise => depthwise_separable(net, name, y, c, false)?,
        ConvKind::InvertedResidual => depthwise_separable(net, name, y, c, true)?,
    };
    let y = net.scale(&format!("{name}.res_scale"), y, c.res_scale)?;
    net.add(name, y, x)
}

/// Linear low-rank: 1x1 wide -> low-rank, 3x3 low-rank -> filters.
fn low_rank(net: &mut Net, name: &str, y: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let y = net.block_conv(&format!("{name}.body.2"), y, c.wide(), c.low_rank(), 1)?;
    net.block_conv(&format!("{name}.body.3"), y, c.low_rank(), c.filters, 3)
}

/// Flattened: the low-rank block's 3x3 as a 3x1 then a 1x3.
fn flattened(net: &mut Net, name: &str, y: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let low = c.low_rank();
    let y = net.block_conv(&format!("{name}.body.2"), y, c.wide(), low, 1)?;
    let y = net.block_conv_shaped(&format!("{name}.body.3"), y, low, low, Kernel::column(3))?;
    net.block_conv_shaped(&format!("{name}.body.4"), y, low, c.filters, Kernel::row(3))
}

/// Group convolution: 3x3 wide -> filters in `g` groups, then a 1x1 mixes the groups.
fn group(net: &mut Net, name: &str, y: Outlet, c: &ModelConfig, g: usize) -> Result<Outlet> {
    let f = c.filters;
    let y = net.block_conv_shaped(&format!("{name}.body.2"), y, c.wide(), f, Kernel::square(3).grouped(g))?;
    net.block_conv(&format!("{name}.body.3"), y, f, f, 1)
}

/// Depthwise separable: 3x3 depthwise on the wide features, then 1x1 wide -> filters;
/// with `relu_between`, MobileNetV2's inverted residual (its expansion 6 is WDSR-B's).
fn depthwise_separable(net: &mut Net, name: &str, y: Outlet, c: &ModelConfig, relu_between: bool) -> Result<Outlet> {
    let wide = c.wide();
    let mut y = net.block_conv_shaped(
        &format!("{name}.body.2"),
        y,
        wide,
        wide,
        Kernel::square(3).grouped(wide),
    )?;
    if relu_between {
        y = net.relu(&format!("{name}.body.3"), y)?;
    }
    net.block_conv(&format!("{name}.body.4"), y, wide, c.filters, 1)
}
