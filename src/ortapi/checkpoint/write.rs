//! Writing the ODTC flatbuffer: tables built bottom-up with `FlatBufferBuilder`.

use super::*;
use flatbuffers::{FlatBufferBuilder, WIPOffset};

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

type Fbb<'a> = FlatBufferBuilder<'a>;
type Off = WIPOffset<flatbuffers::TableFinishedWIPOffset>;

fn write_tensor(b: &mut Fbb, t: &NamedTensor) -> Off {
    use field::tensor as f;
    let name = b.create_string(&t.name);
    let dims = b.create_vector(&t.dims);
    let mut raw = Vec::with_capacity(t.data.len() * 4);
    for v in &t.data {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    let raw = b.create_vector(&raw);
    let start = b.start_table();
    b.push_slot_always(f::NAME, name);
    b.push_slot_always(f::DIMS, dims);
    b.push_slot(f::DATA_TYPE, TENSOR_DATA_TYPE_FLOAT, 0);
    b.push_slot_always(f::RAW_DATA, raw);
    b.end_table(start)
}

fn write_tensor_vec<'f>(
    b: &mut FlatBufferBuilder<'f>,
    ts: &[NamedTensor],
) -> WIPOffset<Vector<'f, ForwardsUOffset<flatbuffers::TableFinishedWIPOffset>>> {
    let offs: Vec<Off> = ts.iter().map(|t| write_tensor(b, t)).collect();
    b.create_vector(&offs)
}

fn write_optimizer_group(b: &mut Fbb, o: &OptimizerState) -> Off {
    let mut states = Vec::with_capacity(o.first_moments.len());
    for (i, m) in o.first_moments.iter().enumerate() {
        let m0 = write_tensor(
            b,
            &NamedTensor {
                name: FIRST_MOMENT_NAME.into(),
                dims: m.dims.clone(),
                data: m.data.clone(),
            },
        );
        let v = o
            .second_moments
            .iter()
            .find(|v| v.name == m.name)
            .or_else(|| o.second_moments.get(i))
            .expect("OptimizerState: second_moments must match first_moments");
        let m1 = write_tensor(
            b,
            &NamedTensor {
                name: SECOND_MOMENT_NAME.into(),
                dims: v.dims.clone(),
                data: v.data.clone(),
            },
        );
        // Same creation order as ORT's FromOptimizerState: name string, then momentum vector.
        let pname = b.create_string(&m.name);
        let momentums = b.create_vector(&[m0, m1]);
        let start = b.start_table();
        b.push_slot_always(field::param_optimizer_state::PARAM_NAME, pname);
        b.push_slot_always(field::param_optimizer_state::MOMENTUMS, momentums);
        states.push(b.end_table(start));
    }
    // ORT order: group name string, states vector; fields name, initial_lr, step, states.
    let gname = b.create_string(&o.group_name);
    let states = b.create_vector(&states);
    use field::optimizer_group as f;
    let start = b.start_table();
    b.push_slot_always(f::GROUP_NAME, gname);
    b.push_slot(f::INITIAL_LEARNING_RATE, o.learning_rate, 0.0f32);
    b.push_slot(f::STEP, o.step, 0i64);
    b.push_slot_always(f::OPTIMIZER_STATES, states);
    b.end_table(start)
}

fn write_property_bag(b: &mut Fbb, props: &[(String, PropertyValue)]) -> Off {
    use field::property as p;
    let (mut ints, mut floats, mut strings) = (Vec::new(), Vec::new(), Vec::new());
    for (name, value) in props {
        let n = b.create_string(name);
        match value {
            PropertyValue::Int(v) => {
                let s = b.start_table();
                b.push_slot_always(p::NAME, n);
                b.push_slot(p::VALUE, *v, 0i64);
                ints.push(b.end_table(s));
            }
            PropertyValue::Float(v) => {
                let s = b.start_table();
                b.push_slot_always(p::NAME, n);
                b.push_slot(p::VALUE, *v, 0.0f32);
                floats.push(b.end_table(s));
            }
            PropertyValue::String(v) => {
                let vs = b.create_string(v);
                let s = b.start_table();
                b.push_slot_always(p::NAME, n);
                b.push_slot_always(p::VALUE, vs);
                strings.push(b.end_table(s));
            }
        }
    }
    let ints = b.create_vector(&ints);
    let floats = b.create_vector(&floats);
    let strings = b.create_vector(&strings);
    use field::property_bag as f;
    let s = b.start_table();
    b.push_slot_always(f::INTS, ints);
    b.push_slot_always(f::FLOATS, floats);
    b.push_slot_always(f::STRINGS, strings);
    b.end_table(s)
}

/// Serialise a checkpoint exactly as ORT 1.19.2 lays it out (version 2, in-buffer tensors).
///
/// Byte-identical to ORT for params-only checkpoints (as written by `generate_artifacts`) and
/// for params + optimizer state when the tensors are given sorted by name (as ORT saves them).
/// Differences that ORT ignores: ORT's `save_checkpoint(include_optimizer_state=False)` writes
/// an empty `optimizer_groups` vector (we omit it, like `generate_artifacts`), and ORT emits
/// property-bag entries in hash-map order.
///
/// Tensors above ORT's external-data threshold (1799 MiB in total) are still written in-buffer;
/// the flatbuffers builder panics beyond 2 GiB.
///
/// Panics if an optimizer state has fewer second moments than first moments.
pub fn write(c: &TrainingApiCheckpoint) -> Vec<u8> {
    let bytes: usize = c.trainable.iter().chain(&c.frozen).map(|t| t.data.len() * 4 + 64).sum();
    let opt_bytes: usize = c.optimizer.as_ref().map_or(0, |o| {
        o.first_moments
            .iter()
            .chain(&o.second_moments)
            .map(|t| t.data.len() * 4 + 96)
            .sum()
    });
    let mut b = FlatBufferBuilder::with_capacity(bytes + opt_bytes + 1024);

    let trainable = write_tensor_vec(&mut b, &c.trainable);
    let frozen = write_tensor_vec(&mut b, &c.frozen);
    let module_state = {
        use field::module_state as f;
        let s = b.start_table();
        // Both vectors are always written: ORT 1.19.2 rejects a null requires_grad/frozen vector.
        b.push_slot_always(f::REQUIRES_GRAD_PARAMS, trainable);
        b.push_slot_always(f::FROZEN_PARAMS, frozen);
        b.end_table(s)
    };
    let groups = c.optimizer.as_ref().map(|o| {
        let g = write_optimizer_group(&mut b, o);
        b.create_vector(&[g])
    });
    let bag = if c.properties.is_empty() {
        None
    } else {
        Some(write_property_bag(&mut b, &c.properties))
    };

    use field::checkpoint as f;
    let s = b.start_table();
    b.push_slot(f::VERSION, CHECKPOINT_VERSION, 0i32);
    b.push_slot_always(f::MODULE_STATE, module_state);
    if let Some(g) = groups {
        b.push_slot_always(f::OPTIMIZER_GROUPS, g);
    }
    if let Some(bag) = bag {
        b.push_slot_always(f::PROPERTY_BAG, bag);
    }
    let root = b.end_table(s);
    b.finish(root, Some(FILE_IDENTIFIER));
    b.finished_data().to_vec()
}
