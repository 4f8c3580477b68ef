"""mnist_models: one MNIST CNN, built identically in Flax and in Keras, with training steps for both."""

from mnist_models._batches import Batches, device_batches, make_batches, one_batch, valid_examples
from mnist_models._compile_count import CompileCounts, KerasTraces, blind_spots, count_compiles, count_keras_traces
from mnist_models._conv import conv_same
from mnist_models._data import MNIST, MNISTDataError, load_mnist
from mnist_models._flax_model import CNN, init_params
from mnist_models._jax_train import (
    TrainState,
    create_train_state,
    eval_step,
    evaluate,
    jit_eval_step,
    jit_scan_epoch,
    jit_train_step,
    scan_epoch,
    set_hyperparams,
    set_learning_rate,
    train_epoch,
    train_step,
    train_steps,
)
from mnist_models._keras_model import KerasCNN, build_keras_cnn, copy_flax_params_to_keras, keras_layer_shapes
from mnist_models._nnx_model import NNXCNN, copy_linen_params_to_nnx, nnx_layer_shapes
from mnist_models._nnx_train import (
    create_nnx_model,
    jit_nnx_split_train_step,
    nnx_eval_step,
    nnx_split_train_step,
    nnx_train_step,
    nnx_train_steps,
    set_nnx_hyperparams,
)
from mnist_models._parallel import (
    DATA_AXIS,
    data_mesh,
    data_parallel_train_step,
    distribute_batch,
    make_keras_data_parallel_step,
    mirrored_strategy,
    pad_batch,
    replicate,
    shard_batch,
    simulate_cpu_devices,
)
from mnist_models._keras_train import (
    KERAS_MODES,
    KerasBatch,
    compile_keras_model,
    keras_batch,
    keras_eval_step,
    keras_evaluate,
    keras_train_epoch,
    keras_train_step,
    keras_train_steps,
    make_keras_tape_loop,
    make_keras_tape_step,
    one_hot,
)
from mnist_models._tuning import (
    TUNED_CPU_OPTIONS,
    TUNED_XLA_FLAGS,
    new_tuned_jit,
    tuned_compiler_options,
    tuned_jit,
)
from mnist_models._spec import (
    BLOG_KERAS_NUM_PARAMS,
    BLOG_KERAS_SPEC,
    CANONICAL_SPEC,
    DEFAULT_SPEC,
    DEFAULT_TRAIN,
    NUM_PARAMS,
    CNNSpec,
    TrainConfig,
    forward_flops,
    layer_shapes,
    num_params,
    train_flops,
)
