// Image and text training data behind one interface, built from the data.* configuration.
#include "pixelfly/train/training_data.h"

#include <ATen/ATen.h>

#include <sstream>
#include <stdexcept>

#include "pixelfly/data/cifar10.h"
#include "pixelfly/data/image_loader.h"
#include "pixelfly/data/mnist_format.h"
#include "pixelfly/data/synthetic.h"
#include "pixelfly/data/text_corpus.h"
#include "pixelfly/data/token_loader.h"

namespace pixelfly::train {
namespace {

data::ImageDataset first(const data::ImageDataset& d, int64_t count) {
  if (count <= 0 || count >= d.images.size(0)) return d;
  return {d.images.slice(0, 0, count), d.labels.slice(0, 0, count), d.classes};
}

// Per-channel mean and standard deviation of uint8 images (N, C, H, W), scaled to [0, 1].
std::pair<std::vector<double>, std::vector<double>> channel_statistics(const at::Tensor& images) {
  const at::Tensor x = images.to(at::kFloat).div(255.0).transpose(0, 1).reshape({images.size(1), -1});
  const at::Tensor mean = x.mean(1), std = x.std(1).clamp_min(1e-6);
  std::vector<double> m, s;
  for (int64_t c = 0; c < images.size(1); ++c) {
    m.push_back(mean[c].item<double>());
    s.push_back(std[c].item<double>());
  }
  return {m, s};
}

class ImageData : public TrainingData {
 public:
  ImageData(std::string name, data::ImageDataset train, data::ImageDataset test, const TrainConfig& c)
      : name_(std::move(name)), eval_cap_(c.eval_batches), train_size_(train.images.size(0)),
        test_size_(test.images.size(0)), classes_(train.classes), shape_(train.images.sizes().vec()) {
    const auto [mean, std] = channel_statistics(train.images);
    data::ImageLoaderOptions o;
    o.batch_size = c.batch_size;
    o.shuffle = true;
    o.drop_last = true;
    o.augment = c.augment;
    o.crop_padding = c.crop_padding;
    o.horizontal_flip = c.flip;
    o.mean = mean;
    o.std = std;
    o.prefetch = c.prefetch;
    o.seed = c.seed;
    train_ = std::make_unique<data::ImageLoader>(std::move(train), o);
    o.batch_size = c.eval_batch_size;
    o.shuffle = false;
    o.drop_last = false;
    o.augment = false;
    test_ = std::make_unique<data::ImageLoader>(std::move(test), o);
  }

  models::Task task() const override { return models::Task::ImageClassification; }
  int64_t batches_per_epoch() const override { return train_->batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t skip) override {
    train_->start_epoch(epoch);
    for (int64_t i = 0; i < skip && train_->next(); ++i) {
    }
  }
  std::optional<Batch> next() override { return convert(train_->next()); }
  void start_evaluation() override {
    test_->start_epoch(0);
    eval_done_ = 0;
  }
  std::optional<Batch> next_evaluation() override {
    if (eval_cap_ > 0 && eval_done_ >= eval_cap_) return std::nullopt;
    ++eval_done_;
    return convert(test_->next());
  }
  int64_t training_examples() const override { return train_size_; }
  at::Tensor training_inputs(const std::vector<int64_t>& indices) const override {
    return train_->augmented_images(indices, recalibration_draws_++);
  }
  void describe_to(models::ModelConfig& m) const override {
    m.in_channels = shape_[1];
    m.image_size = shape_[2];
    m.classes = classes_;
  }
  std::string summary() const override {
    std::ostringstream s;
    s << name_ << ": " << train_size_ << " training / " << test_size_ << " test images, " << shape_[1] << "x"
      << shape_[2] << "x" << shape_[3] << ", " << classes_ << " classes";
    return s.str();
  }

 private:
  static std::optional<Batch> convert(std::optional<data::ImageBatch> b) {
    if (!b) return std::nullopt;
    return Batch{std::move(b->images), std::move(b->labels)};
  }

  std::string name_;
  int64_t eval_cap_, eval_done_ = 0, train_size_, test_size_, classes_;
  std::vector<int64_t> shape_;
  std::unique_ptr<data::ImageLoader> train_, test_;
  mutable int64_t recalibration_draws_ = 0;
};

class TextData : public TrainingData {
 public:
  TextData(std::string description, const at::Tensor& train, const at::Tensor& validation, const TrainConfig& c)
      : description_(std::move(description)), eval_cap_(c.eval_batches), context_(c.context) {
    data::TokenLoaderOptions o;
    o.batch_size = c.batch_size;
    o.context = c.context;
    o.prefetch = c.prefetch;
    o.seed = c.seed;
    train_ = std::make_unique<data::TokenLoader>(train, o);
    o.batch_size = c.eval_batch_size;
    o.prefetch = 0;
    validation_ = std::make_unique<data::TokenLoader>(validation, o);
    steps_per_epoch_ = c.steps_per_epoch > 0 ? c.steps_per_epoch
                                             : std::max<int64_t>(1, train_->size() / (c.batch_size * c.context));
    if (validation_->eval_windows() == 0) {
      throw std::invalid_argument("data.validation_fraction leaves " + std::to_string(validation_->size()) +
                                  " bytes for validation, fewer than one window of data.context = " +
                                  std::to_string(c.context) + " + 1");
    }
  }

  models::Task task() const override { return models::Task::LanguageModelling; }
  int64_t batches_per_epoch() const override { return steps_per_epoch_; }
  void start_epoch(int64_t epoch, int64_t skip) override {
    remaining_ = steps_per_epoch_ - skip;
    train_->seek(epoch * steps_per_epoch_ + skip);
  }
  std::optional<Batch> next() override {
    if (remaining_ <= 0) return std::nullopt;
    --remaining_;
    data::TokenBatch b = train_->next();
    return Batch{std::move(b.inputs), std::move(b.targets)};
  }
  void start_evaluation() override { eval_index_ = 0; }
  std::optional<Batch> next_evaluation() override {
    if (eval_index_ >= validation_->eval_batches(eval_cap_)) return std::nullopt;
    data::TokenBatch b = validation_->eval_batch(eval_index_++);
    return Batch{std::move(b.inputs), std::move(b.targets)};
  }
  int64_t training_examples() const override { return 0; }
  at::Tensor training_inputs(const std::vector<int64_t>&) const override {
    throw std::invalid_argument("batch-norm recalibration needs an image data set; " + description_ + " is text");
  }
  void describe_to(models::ModelConfig& m) const override {
    m.vocab_size = data::kByteVocab;
    m.context = context_;
  }
  std::string summary() const override {
    std::ostringstream s;
    s << description_ << ": " << train_->size() << " training / " << validation_->size()
      << " validation bytes, windows of " << context_ << ", " << steps_per_epoch_ << " steps per epoch";
    return s.str();
  }

 private:
  std::string description_;
  int64_t eval_cap_, context_, steps_per_epoch_ = 0, remaining_ = 0, eval_index_ = 0;
  std::unique_ptr<data::TokenLoader> train_, validation_;
};

std::string default_corpus_cache(const TrainConfig& c) {
  if (!c.corpus_cache.empty()) return c.corpus_cache;
  const auto slash = c.run_dir.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : c.run_dir.substr(0, slash);
  return parent + "/kjv.txt";
}

}  // namespace

std::unique_ptr<TrainingData> make_training_data(const TrainConfig& c) {
  if (c.data_name == "fashion-mnist" || c.data_name == "mnist-format") {
    const std::string dir = c.data_dir.empty() ? data::default_fashion_mnist_dir() : c.data_dir;
    return std::make_unique<ImageData>(c.data_name + " (" + dir + ")",
                                       first(data::load_mnist_format(dir, true), c.train_subset),
                                       data::load_mnist_format(dir, false), c);
  }
  if (c.data_name == "cifar10") {
    return std::make_unique<ImageData>("cifar10 (" + c.data_dir + ")",
                                       first(data::load_cifar10(c.data_dir, true), c.train_subset),
                                       data::load_cifar10(c.data_dir, false), c);
  }
  if (c.data_name == "synthetic-images") {
    const int64_t test_count = std::max<int64_t>(c.eval_batch_size, c.synthetic_count / 5);
    return std::make_unique<ImageData>(
        "synthetic images",
        data::synthetic_images(c.synthetic_count, c.synthetic_channels, c.synthetic_image_size, c.synthetic_classes,
                               c.seed),
        data::synthetic_images(test_count, c.synthetic_channels, c.synthetic_image_size, c.synthetic_classes,
                               c.seed + 1),
        c);
  }
  at::Tensor tokens;
  std::string description;
  if (c.data_name == "text") {
    tokens = data::load_text_corpus(c.text_files, default_corpus_cache(c));
    description = c.text_files.empty() ? "King James Bible (bible-kjv)" : "text files";
  } else {
    tokens = data::synthetic_tokens(c.synthetic_count, data::kByteVocab, c.seed);
    description = "synthetic tokens";
  }
  const data::TextSplit split = data::split_text(tokens, c.validation_fraction);
  return std::make_unique<TextData>(description, split.train, split.validation, c);
}

}  // namespace pixelfly::train
