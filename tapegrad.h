/*
 * tapegrad.h — the whole public library in one include.
 *
 *     #include <tapegrad.h>   // after `make install`, built with
 *     cc prog.c $(pkg-config --cflags --libs tapegrad)                    # libtapegrad.so
 *     cc -static prog.c $(pkg-config --static --cflags --libs tapegrad)   # libtapegrad.a, -lm -lpthread
 *
 * The layers, in the order they depend on each other: each includes only
 * the ones above it in this list.
 *   tensor/    tensors, arenas, random numbers, matrix product, thread count
 *   io/        file formats: gzip, whole files and atomic writes, JSON, PNG,
 *              line charts as PNG, IDX writing, safetensors
 *   autograd/  the tape and the differentiable ops
 *   nn/        parameters, Linear, losses, parameter checkpoints (through io/)
 *   optim/     Adam and SGD
 *   data/      datasets: IDX reading, the default dataset, mini-batches
 *   models/    the reference VAE and the VAE family
 *
 * The headers included here are the public ones: `make install` installs
 * exactly these, under PREFIX/include/tapegrad/ with their directories.
 * The rest (tensor/pool.h, tensor/gemm.h, tensor/vmath.h,
 * autograd/internal.h) are the library's internals.
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include "tensor/tensor.h"
#include "tensor/threads.h"
#include "tensor/kernels.h"
#include "io/file.h"
#include "io/gzip.h"
#include "io/idx_write.h"
#include "io/json.h"
#include "io/png.h"
#include "io/plot.h"
#include "io/safetensors.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "nn/checkpoint.h"
#include "optim/optim.h"
#include "data/data.h"
#include "models/vae.h"
#include "models/parts.h"
#include "models/model.h"
#include "models/mlp_vae.h"
#include "models/vq.h"

#endif
