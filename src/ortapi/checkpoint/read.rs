//! Reading the ODTC flatbuffer: hand-written table accessors, each table verified before use.

use super::*;
use flatbuffers::{Follow, ForwardsUOffset, InvalidFlatbuffer, Table, Vector, Verifiable, Verifier, VerifierOptions};

// ---------------------------------------------------------------------------------------------
// Reader: hand-written table accessors + verifiers
// ---------------------------------------------------------------------------------------------

macro_rules! fb_table {
    ($name:ident) => {
        #[derive(Clone, Copy)]
        struct $name<'a> {
            tab: Table<'a>,
        }
        impl<'a> Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            #[inline]
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                $name {
                    tab: unsafe { Table::new(buf, loc) },
                }
            }
        }
    };
}

fb_table!(FbTensor);
fb_table!(FbModuleState);
fb_table!(FbParamOptState);
fb_table!(FbOptimizerGroup);
fb_table!(FbIntProperty);
fb_table!(FbFloatProperty);
fb_table!(FbStringProperty);
fb_table!(FbPropertyBag);
fb_table!(FbCheckpoint);

type VecOf<'a, T> = Vector<'a, ForwardsUOffset<T>>;
type Str<'a> = ForwardsUOffset<&'a str>;

// Safety of the accessors below: they are only called on tables reached from a root that
// passed `flatbuffers::root_with_opts`, whose verifier checked every field with the type used
// here (see the `Verifiable` impls).
impl<'a> FbTensor<'a> {
    fn name(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(field::tensor::NAME, None) }
    }
    fn dims(&self) -> Option<Vector<'a, i64>> {
        unsafe { self.tab.get::<ForwardsUOffset<Vector<i64>>>(field::tensor::DIMS, None) }
    }
    fn data_type(&self) -> i32 {
        unsafe { self.tab.get::<i32>(field::tensor::DATA_TYPE, Some(0)).unwrap_or(0) }
    }
    fn raw_data(&self) -> Option<&'a [u8]> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<Vector<u8>>>(field::tensor::RAW_DATA, None)
        }
        .map(|v| v.bytes())
    }
    fn external_data_offset(&self) -> i64 {
        unsafe {
            self.tab
                .get::<i64>(field::tensor::EXTERNAL_DATA_OFFSET, Some(-1))
                .unwrap_or(-1)
        }
    }
}
impl Verifiable for FbTensor<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use field::tensor as f;
        v.visit_table(pos)?
            .visit_field::<Str>("Tensor.name", f::NAME, false)?
            .visit_field::<Str>("Tensor.doc_string", f::DOC_STRING, false)?
            .visit_field::<ForwardsUOffset<Vector<i64>>>("Tensor.dims", f::DIMS, false)?
            .visit_field::<i32>("Tensor.data_type", f::DATA_TYPE, false)?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("Tensor.raw_data", f::RAW_DATA, false)?
            .visit_field::<ForwardsUOffset<VecOf<&str>>>("Tensor.string_data", f::STRING_DATA, false)?
            .visit_field::<i64>("Tensor.external_data_offset", f::EXTERNAL_DATA_OFFSET, false)?
            .finish();
        Ok(())
    }
}

impl<'a> FbModuleState<'a> {
    fn requires_grad_params(&self) -> Option<VecOf<'a, FbTensor<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbTensor>>>(field::module_state::REQUIRES_GRAD_PARAMS, None)
        }
    }
    fn frozen_params(&self) -> Option<VecOf<'a, FbTensor<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbTensor>>>(field::module_state::FROZEN_PARAMS, None)
        }
    }
    fn is_nominal_state(&self) -> bool {
        unsafe {
            self.tab
                .get::<bool>(field::module_state::IS_NOMINAL_STATE, Some(false))
                .unwrap_or(false)
        }
    }
    fn has_external_data(&self) -> bool {
        unsafe {
            self.tab
                .get::<bool>(field::module_state::HAS_EXTERNAL_DATA, Some(false))
                .unwrap_or(false)
        }
    }
}
impl Verifiable for FbModuleState<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use field::module_state as f;
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<VecOf<FbTensor>>>(
                "ModuleState.requires_grad_params",
                f::REQUIRES_GRAD_PARAMS,
                false,
            )?
            .visit_field::<ForwardsUOffset<VecOf<FbTensor>>>("ModuleState.frozen_params", f::FROZEN_PARAMS, false)?
            .visit_field::<bool>("ModuleState.is_nominal_state", f::IS_NOMINAL_STATE, false)?
            .visit_field::<bool>("ModuleState.has_external_data", f::HAS_EXTERNAL_DATA, false)?
            .finish();
        Ok(())
    }
}

impl<'a> FbParamOptState<'a> {
    fn param_name(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(field::param_optimizer_state::PARAM_NAME, None) }
    }
    fn momentums(&self) -> Option<VecOf<'a, FbTensor<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbTensor>>>(field::param_optimizer_state::MOMENTUMS, None)
        }
    }
}
impl Verifiable for FbParamOptState<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use field::param_optimizer_state as f;
        v.visit_table(pos)?
            .visit_field::<Str>("ParameterOptimizerState.param_name", f::PARAM_NAME, false)?
            .visit_field::<ForwardsUOffset<VecOf<FbTensor>>>("ParameterOptimizerState.momentums", f::MOMENTUMS, false)?
            .finish();
        Ok(())
    }
}

impl<'a> FbOptimizerGroup<'a> {
    fn group_name(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(field::optimizer_group::GROUP_NAME, None) }
    }
    fn step(&self) -> i64 {
        unsafe { self.tab.get::<i64>(field::optimizer_group::STEP, Some(0)).unwrap_or(0) }
    }
    fn initial_learning_rate(&self) -> f32 {
        unsafe {
            self.tab
                .get::<f32>(field::optimizer_group::INITIAL_LEARNING_RATE, Some(0.0))
                .unwrap_or(0.0)
        }
    }
    fn optimizer_states(&self) -> Option<VecOf<'a, FbParamOptState<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbParamOptState>>>(field::optimizer_group::OPTIMIZER_STATES, None)
        }
    }
}
impl Verifiable for FbOptimizerGroup<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use field::optimizer_group as f;
        v.visit_table(pos)?
            .visit_field::<Str>("OptimizerGroup.group_name", f::GROUP_NAME, false)?
            .visit_field::<i64>("OptimizerGroup.step", f::STEP, false)?
            .visit_field::<f32>("OptimizerGroup.initial_learning_rate", f::INITIAL_LEARNING_RATE, false)?
            .visit_field::<ForwardsUOffset<VecOf<FbParamOptState>>>(
                "OptimizerGroup.optimizer_states",
                f::OPTIMIZER_STATES,
                false,
            )?
            .finish();
        Ok(())
    }
}

macro_rules! property_impl {
    ($ty:ident, $vty:ty, $vfollow:ty, $label:literal) => {
        impl<'a> $ty<'a> {
            fn name(&self) -> Option<&'a str> {
                unsafe { self.tab.get::<Str>(field::property::NAME, None) }
            }
        }
        impl Verifiable for $ty<'_> {
            fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
                v.visit_table(pos)?
                    .visit_field::<Str>(concat!($label, ".name"), field::property::NAME, false)?
                    .visit_field::<$vfollow>(concat!($label, ".value"), field::property::VALUE, false)?
                    .finish();
                Ok(())
            }
        }
    };
}
property_impl!(FbIntProperty, i64, i64, "IntProperty");
property_impl!(FbFloatProperty, f32, f32, "FloatProperty");
property_impl!(FbStringProperty, &str, Str, "StringProperty");
impl FbIntProperty<'_> {
    fn value(&self) -> i64 {
        unsafe { self.tab.get::<i64>(field::property::VALUE, Some(0)).unwrap_or(0) }
    }
}
impl FbFloatProperty<'_> {
    fn value(&self) -> f32 {
        unsafe { self.tab.get::<f32>(field::property::VALUE, Some(0.0)).unwrap_or(0.0) }
    }
}
impl<'a> FbStringProperty<'a> {
    fn value(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(field::property::VALUE, None) }
    }
}

impl<'a> FbPropertyBag<'a> {
    fn ints(&self) -> Option<VecOf<'a, FbIntProperty<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbIntProperty>>>(field::property_bag::INTS, None)
        }
    }
    fn floats(&self) -> Option<VecOf<'a, FbFloatProperty<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbFloatProperty>>>(field::property_bag::FLOATS, None)
        }
    }
    fn strings(&self) -> Option<VecOf<'a, FbStringProperty<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbStringProperty>>>(field::property_bag::STRINGS, None)
        }
    }
}
impl Verifiable for FbPropertyBag<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use field::property_bag as f;
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<VecOf<FbIntProperty>>>("PropertyBag.ints", f::INTS, false)?
            .visit_field::<ForwardsUOffset<VecOf<FbFloatProperty>>>("PropertyBag.floats", f::FLOATS, false)?
            .visit_field::<ForwardsUOffset<VecOf<FbStringProperty>>>("PropertyBag.strings", f::STRINGS, false)?
            .finish();
        Ok(())
    }
}

impl<'a> FbCheckpoint<'a> {
    fn version(&self) -> i32 {
        unsafe { self.tab.get::<i32>(field::checkpoint::VERSION, Some(0)).unwrap_or(0) }
    }
    fn module_state(&self) -> Option<FbModuleState<'a>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<FbModuleState>>(field::checkpoint::MODULE_STATE, None)
        }
    }
    fn optimizer_groups(&self) -> Option<VecOf<'a, FbOptimizerGroup<'a>>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<VecOf<FbOptimizerGroup>>>(field::checkpoint::OPTIMIZER_GROUPS, None)
        }
    }
    fn property_bag(&self) -> Option<FbPropertyBag<'a>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<FbPropertyBag>>(field::checkpoint::PROPERTY_BAG, None)
        }
    }
}
impl Verifiable for FbCheckpoint<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        use field::checkpoint as f;
        v.visit_table(pos)?
            .visit_field::<i32>("Checkpoint.version", f::VERSION, false)?
            .visit_field::<ForwardsUOffset<FbModuleState>>("Checkpoint.module_state", f::MODULE_STATE, false)?
            .visit_field::<ForwardsUOffset<VecOf<FbOptimizerGroup>>>(
                "Checkpoint.optimizer_groups",
                f::OPTIMIZER_GROUPS,
                false,
            )?
            .visit_field::<ForwardsUOffset<FbPropertyBag>>("Checkpoint.property_bag", f::PROPERTY_BAG, false)?
            .finish();
        Ok(())
    }
}

fn missing(what: impl Into<String>) -> CheckpointError {
    CheckpointError::MissingField { what: what.into() }
}

fn read_tensor(t: FbTensor, context: &str) -> Result<NamedTensor, CheckpointError> {
    let name = t
        .name()
        .ok_or_else(|| missing(format!("tensor name in {context}")))?
        .to_string();
    let dims: Vec<i64> = t
        .dims()
        .ok_or_else(|| missing(format!("dims of tensor {name:?}")))?
        .iter()
        .collect();
    if t.data_type() != TENSOR_DATA_TYPE_FLOAT {
        return Err(CheckpointError::UnsupportedDataType {
            tensor: name,
            data_type: t.data_type(),
        });
    }
    let raw = match t.raw_data() {
        Some(r) => r,
        None if t.external_data_offset() >= 0 => return Err(CheckpointError::ExternalData { tensor: name }),
        None => return Err(missing(format!("raw_data of tensor {name:?}"))),
    };
    let mut n: usize = 1;
    for &d in &dims {
        n = usize::try_from(d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .ok_or_else(|| CheckpointError::BadDims {
                tensor: name.clone(),
                dims: dims.clone(),
            })?;
    }
    let expected = n.checked_mul(4).ok_or_else(|| CheckpointError::BadDims {
        tensor: name.clone(),
        dims: dims.clone(),
    })?;
    if raw.len() != expected {
        return Err(CheckpointError::BadTensorData {
            tensor: name,
            expected_bytes: expected,
            found_bytes: raw.len(),
        });
    }
    let data = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(NamedTensor { name, dims, data })
}

fn read_tensors(v: VecOf<FbTensor>, context: &str) -> Result<Vec<NamedTensor>, CheckpointError> {
    v.iter().map(|t| read_tensor(t, context)).collect()
}

fn read_optimizer(g: FbOptimizerGroup) -> Result<OptimizerState, CheckpointError> {
    let group_name = g
        .group_name()
        .ok_or_else(|| missing("OptimizerGroup.group_name"))?
        .to_string();
    let states = g
        .optimizer_states()
        .ok_or_else(|| missing("OptimizerGroup.optimizer_states"))?;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for s in states.iter() {
        let pname = s
            .param_name()
            .ok_or_else(|| missing("ParameterOptimizerState.param_name"))?;
        let moms = s
            .momentums()
            .ok_or_else(|| missing(format!("momentums of parameter {pname:?}")))?;
        let (mut m, mut v) = (None, None);
        for t in moms.iter() {
            let mut t = read_tensor(t, "ParameterOptimizerState.momentums")?;
            let slot = match t.name.as_str() {
                FIRST_MOMENT_NAME => &mut m,
                SECOND_MOMENT_NAME => &mut v,
                other => {
                    return Err(CheckpointError::BadOptimizerState {
                        detail: format!("parameter {pname:?} has unknown momentum {other:?} (expected {FIRST_MOMENT_NAME:?}/{SECOND_MOMENT_NAME:?})"),
                    })
                }
            };
            t.name = pname.to_string();
            *slot = Some(t);
        }
        match (m, v) {
            (Some(m), Some(v)) => {
                first.push(m);
                second.push(v);
            }
            _ => {
                return Err(CheckpointError::BadOptimizerState {
                    detail: format!("parameter {pname:?} lacks {FIRST_MOMENT_NAME:?} or {SECOND_MOMENT_NAME:?}"),
                })
            }
        }
    }
    Ok(OptimizerState {
        group_name,
        step: g.step(),
        learning_rate: g.initial_learning_rate(),
        first_moments: first,
        second_moments: second,
    })
}

/// Parse and validate an ORT 1.19.2 training checkpoint.
pub fn read(bytes: &[u8]) -> Result<TrainingApiCheckpoint, CheckpointError> {
    if bytes.len() < 8 {
        return Err(CheckpointError::TooShort { len: bytes.len() });
    }
    if !flatbuffers::buffer_has_identifier(bytes, FILE_IDENTIFIER, false) {
        return Err(CheckpointError::WrongIdentifier {
            found: [bytes[4], bytes[5], bytes[6], bytes[7]],
        });
    }
    let opts = VerifierOptions {
        max_depth: 64,
        max_tables: 100_000_000,
        max_apparent_size: usize::MAX,
        ignore_missing_null_terminator: false,
    };
    let root = flatbuffers::root_with_opts::<FbCheckpoint>(&opts, bytes)?;
    let version = root.version();
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(CheckpointError::UnsupportedVersion {
            found: version,
            supported: SUPPORTED_VERSIONS,
        });
    }
    // ORT 1.19.2 accepts a checkpoint without module_state (no parameters); if module_state is
    // present, both tensor vectors must be present (ORT: "Encountered a nullptr").
    let (trainable, frozen) = match root.module_state() {
        None => (Vec::new(), Vec::new()),
        Some(ms) => {
            if ms.is_nominal_state() {
                return Err(CheckpointError::NominalState);
            }
            let trainable = ms
                .requires_grad_params()
                .ok_or_else(|| missing("ModuleState.requires_grad_params"))?;
            let frozen = ms.frozen_params().ok_or_else(|| missing("ModuleState.frozen_params"))?;
            if ms.has_external_data() {
                let first = trainable
                    .iter()
                    .chain(frozen.iter())
                    .next()
                    .and_then(|t| t.name())
                    .unwrap_or("<none>");
                return Err(CheckpointError::ExternalData {
                    tensor: first.to_string(),
                });
            }
            (
                read_tensors(trainable, "ModuleState.requires_grad_params")?,
                read_tensors(frozen, "ModuleState.frozen_params")?,
            )
        }
    };

    let optimizer = match root.optimizer_groups() {
        None => None,
        Some(gs) if gs.is_empty() => None,
        Some(gs) if gs.len() > 1 => {
            return Err(CheckpointError::BadOptimizerState {
                detail: format!("{} optimizer groups; ORT uses exactly one", gs.len()),
            })
        }
        Some(gs) => Some(read_optimizer(gs.get(0))?),
    };

    let mut properties = Vec::new();
    if let Some(bag) = root.property_bag() {
        for p in bag.ints().iter().flat_map(|v| v.iter()) {
            properties.push((
                p.name().ok_or_else(|| missing("IntProperty.name"))?.to_string(),
                PropertyValue::Int(p.value()),
            ));
        }
        for p in bag.floats().iter().flat_map(|v| v.iter()) {
            properties.push((
                p.name().ok_or_else(|| missing("FloatProperty.name"))?.to_string(),
                PropertyValue::Float(p.value()),
            ));
        }
        for p in bag.strings().iter().flat_map(|v| v.iter()) {
            let name = p.name().ok_or_else(|| missing("StringProperty.name"))?.to_string();
            let value = p
                .value()
                .ok_or_else(|| missing(format!("value of string property {name:?}")))?
                .to_string();
            properties.push((name, PropertyValue::String(value)));
        }
    }
    Ok(TrainingApiCheckpoint {
        trainable,
        frozen,
        optimizer,
        properties,
    })
}
